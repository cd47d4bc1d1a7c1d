"""The pieces of the tcpdump text reader: its grammar and the service-name table."""

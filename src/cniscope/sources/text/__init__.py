"""tcpdump's terminal text: the reader (`reader.py`), its grammar, TCP numbers and the service-name table."""

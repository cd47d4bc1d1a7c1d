"""Capture file formats, byte for byte: what the readers (`cniscope.sources`) and the writers share.

- `magic`    what a file's first four bytes say (pcap or pcapng), without numpy
- `pcap`     the classic format: magics, file and record headers, the record walk, a small encoder
- `pcapng`   block types, option codes, epb_flags, and a block-by-block writer
- `convert`  what `tcpdump -i any -w` wrote (LINUX_SLL2) -> a pcapng section with the node's interface names,
             and several nodes' sections merged into one in time order
"""

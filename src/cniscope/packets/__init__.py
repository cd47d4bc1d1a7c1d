"""Packets: raw frames -> rows of the packet table, vectorized.

- `schema`    the table's columns (the contract every stage reads)
- `decode`    `decode_batch(batch, input_index, ports)`: a FrameBatch -> table rows, numpy over whole chunks
- `fallback`  the per-packet reference decoder, for the rows the vector path leaves to it
- `headers`   every header's fields, declared once as data, read by both paths
- `ports`     `TunnelPorts`: UDP destination port -> tunnel kind, the one dispatch table (the models' by default)
- `digest`    the 64-bit payload digest (payload length + first 16 bytes)
- `columns`   per-chunk column arrays with validity masks, handed to Arrow without copies
"""

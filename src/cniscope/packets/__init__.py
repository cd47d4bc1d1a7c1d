"""Packets: raw frames -> rows of the packet table.

- `schema`    the table's columns (the contract every stage reads)
- `kinds`     the vocabularies the readers and models share without polars: directions, tunnels, clocks, link types
- `decode`    `decode_batch(batch, input_index, ports)`: a FrameBatch -> table rows, chunk by chunk, through
              the C decoder `_decode.c` (each frame read once, fields written straight into the column arrays)
- `tags`      what ingest puts on a batch's decoded arrays: the node the user named, comments, null times
- `fallback`  the per-packet reference decoder in Python: the C decoder's reference, and the decoder where C was not built
- `headers`   every header's fields, declared once as data (the fallback's, and the frames written from text)
- `ports`     `TunnelPorts`: UDP destination port -> tunnel kind, the one dispatch table (the models' by default)
- `digest`    the 64-bit payload digest (payload length + first 16 bytes)
- `columns`   per-chunk column arrays with validity masks, handed to Arrow without copies
"""

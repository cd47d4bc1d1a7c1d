import numpy as np

def pcap_records(data: np.ndarray, pos: int, stop: int, end: int, limit: int, big: bool,
                 out: np.ndarray, /) -> tuple[int, int]: ...
def pcapng_packets(data: np.ndarray, pos: int, end: int, limit: int, big: bool, kind: int,
                   out: np.ndarray, /) -> tuple[int, int]: ...


# the process's end, its memory freed after its parent's wait (cniscope.cli._leave)
from typing import NoReturn

def leave(code: int, /) -> NoReturn: ...

# the report's journeys and conversations as JSON text (cniscope.report.json_out)

# elements, one a line (",\n  " between), as orjson writes them; `objects` written as their __dict__, `endpoint` as its
# text; None where an element holds anything else (json_out writes those)
def lines(elements: list[object], objects: tuple[type, ...], endpoint: type | None, /) -> bytes | None: ...

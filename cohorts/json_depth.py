"""How deep JSON nests, measured without recursion: request bodies (access.parsers) and rule
definitions (cohorts.rules) are refused past a limit before any recursive walk."""


def json_depth_exceeds(value, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` deep in `value` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False

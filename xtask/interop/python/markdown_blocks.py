"""Fenced code blocks of a Markdown document, by the CommonMark rules for fences.

A fence is a line indented by at most three spaces that starts with at least three backticks
or tildes; the first word of the text after it (the info string) is the block's language.
The block ends at a line, indented by at most three spaces, of the same character at least as
long as the opening run and nothing else but spaces; a block never closed runs to the end of
the document. Content lines lose as many leading spaces (up to) as the opening fence had.
Container blocks (lists, block quotes) are not looked into: the README's snippets sit at the
top level, and a snippet moved into one would stop being found, failing the test loudly.
"""

import re

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def fenced_blocks(text):
    """`[(language, code)]` for every fenced code block of `text`, in document order."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        i += 1
        if not m:
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).strip()
        if fence[0] == "`" and "`" in info:
            continue  # not a fence: a backtick fence's info string has no backtick
        closing = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{%d,}[ \t]*$" % len(fence))
        body = []
        while i < len(lines) and not closing.match(lines[i]):
            line = lines[i]
            strip = len(line) - len(line.lstrip(" "))
            body.append(line[min(strip, indent):])
            i += 1
        i += 1  # the closing fence (or past the end)
        language = info.split()[0] if info else ""
        blocks.append((language, "\n".join(body) + "\n" if body else ""))
    return blocks


def only_block(text, language):
    """The code of the one block tagged `language`; fails when there are none or several."""
    found = [code for lang, code in fenced_blocks(text) if lang == language]
    if len(found) != 1:
        raise AssertionError(
            f"expected exactly one ```{language} block in the README, found {len(found)}"
        )
    return found[0]

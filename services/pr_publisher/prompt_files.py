"""Read and replace the prompt inside a team's prompt file, changing nothing else.

A prompt lives in one of four kinds of file (DESIGN §7): plain text (the whole file is
the prompt), JSON or YAML (a string at a dot path such as ``prompts.summarize.system``;
list items by index, ``items.0.text``) or Python (a module-level string variable such as
``SYSTEM_PROMPT``). Every edit is a span replacement: we find the characters of the one
literal that holds the prompt and write a new literal in their place, so comments,
ordering, indentation and quoting elsewhere survive byte for byte and a reviewer's diff
shows only the prompt. A rewritten JSON/YAML/Python file is parsed again and checked to
hold exactly the new text before it is returned.

The file comes from a repository, so it may be hostile: it is refused when larger than
:data:`MAX_FILE_BYTES`, when YAML nests deeper than :data:`MAX_DEPTH`, uses more than
:data:`MAX_ALIASES` aliases or expands through them to more than :data:`MAX_NODES` values
(an alias bomb), and when reading or editing it takes longer than the timeout. Every
regular expression that scans file content runs in linear time (none can backtrack
quadratically), and locators are dot paths or names, never patterns.

Pure functions, no I/O.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

PromptFormat = Literal["text", "json", "yaml", "python"]

#: Prompt files are small; a bigger one is refused before it is parsed.
MAX_FILE_BYTES = 256 * 1024
#: How deeply a YAML document may nest, counting what its aliases bring in.
MAX_DEPTH = 64
#: Aliases (``*name``) one YAML document may use.
MAX_ALIASES = 1000
#: Values one YAML document may hold once its aliases are expanded (alias bombs stop here).
MAX_NODES = 100_000
#: Reading or editing one file takes at most this long (pure-Python YAML is slow).
PARSE_TIMEOUT_SECONDS = 10.0

_BOM = "\ufeff"


class PromptFileError(ValueError):
    """The prompt file cannot be read or edited as configured; the message says what to fix."""


def read_prompt(
    content: str,
    fmt: PromptFormat,
    locator: str | None,
    *,
    filename: str | None = None,
    timeout: float = PARSE_TIMEOUT_SECONDS,
) -> str:
    """The prompt held by ``content`` (a whole prompt file) at ``locator``.

    ``filename`` only makes error messages name the file.
    """
    ctx = _Ctx(fmt, locator, filename, time.monotonic() + timeout)
    reader, _ = _handlers(fmt, ctx)
    _check_size(content, ctx)
    with _bounded(ctx):
        return reader(content.removeprefix(_BOM), ctx)


def replace_prompt(
    content: str,
    fmt: PromptFormat,
    locator: str | None,
    new_prompt: str,
    *,
    filename: str | None = None,
    timeout: float = PARSE_TIMEOUT_SECONDS,
) -> str:
    """``content`` with the prompt at ``locator`` replaced by ``new_prompt``; every other byte is kept."""
    ctx = _Ctx(fmt, locator, filename, time.monotonic() + timeout)
    _, replacer = _handlers(fmt, ctx)
    try:
        new_prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PromptFileError(f"the new prompt cannot be written as UTF-8 ({exc.reason})") from None
    _check_size(content, ctx)
    bom = _BOM if content.startswith(_BOM) else ""
    with _bounded(ctx):
        result = replacer(content[len(bom) :], ctx, new_prompt)
    # A leading BOM is read as the file's encoding mark, so a text prompt that itself
    # starts with U+FEFF needs one in front of it.
    return (bom or (_BOM if result.startswith(_BOM) else "")) + result


@dataclass(frozen=True)
class _Ctx:
    """What an error message needs to say where the problem is."""

    fmt: str
    locator: str | None
    filename: str | None
    deadline: float = float("inf")

    @property
    def file(self) -> str:
        return self.filename or "the prompt file"

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise self.error(f"{self.file} took too long to parse; Kaizen refuses prompt files this complex")

    @property
    def parts(self) -> list[str]:
        if not self.locator or any(not part for part in self.locator.split(".")):
            raise self.error(
                f"{self.fmt} prompt files need a key path such as prompts.system as locator, "
                f"got {self.locator!r}"
            )
        return self.locator.split(".")

    def error(self, message: str) -> PromptFileError:
        return PromptFileError(message)


def _check_size(content: str, ctx: _Ctx) -> None:
    size = len(content.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise ctx.error(
            f"{ctx.file} is {size // 1024} KiB; Kaizen edits prompt files of at most "
            f"{MAX_FILE_BYTES // 1024} KiB"
        )


@contextmanager
def _bounded(ctx: _Ctx) -> Iterator[None]:
    """Nesting that outruns Python's stack (json, ast, comparisons) is the file's fault, not ours."""
    try:
        yield
    except (RecursionError, MemoryError):
        raise ctx.error(f"{ctx.file} is nested too deeply to be read safely") from None


_Reader = Callable[[str, _Ctx], str]
_Replacer = Callable[[str, _Ctx, str], str]


def _handlers(fmt: str, ctx: _Ctx) -> tuple[_Reader, _Replacer]:
    handlers: dict[str, tuple[_Reader, _Replacer]] = {
        "text": (_text_read, _text_replace),
        "json": (_json_read, _json_replace),
        "yaml": (_yaml_read, _yaml_replace),
        "python": (_py_read, _py_replace),
    }
    if fmt not in handlers:
        raise ctx.error(f"unknown prompt format {fmt!r}; use one of: {', '.join(handlers)}")
    return handlers[fmt]


# --- text ------------------------------------------------------------------------------


def _text_read(content: str, ctx: _Ctx) -> str:
    # One final newline is the file's convention, not part of the prompt.
    if content.endswith("\r\n"):
        return content[:-2]
    return content.removesuffix("\n")


def _text_replace(content: str, ctx: _Ctx, new: str) -> str:
    # Reading strips exactly one final line break, so a prompt that itself ends in one
    # needs another; a trailing "\r" is protected by writing "\r\n" after it.
    if not (content.endswith("\n") or new.endswith("\n")):
        return new
    return new + ("\r\n" if content.endswith("\r\n") or new.endswith("\r") else "\n")


# --- shared by JSON and YAML: walking the loaded document -------------------------------


def _walk(doc: Any, ctx: _Ctx) -> str:
    node = doc
    parts = ctx.parts
    for depth, part in enumerate(parts):
        here = ".".join(parts[:depth]) or "the top level"
        missing = f"key path {ctx.locator} not found in {ctx.file}"
        if isinstance(node, dict):
            key = _dict_key(node, part)
            if key is None:
                names = ", ".join(str(k) for k in list(node)[:30]) or "none"
                raise ctx.error(f"{missing}; available keys at {here}: {names}")
            node = node[key]
        elif isinstance(node, list):
            if not (part.isdigit() and int(part) < len(node)):
                raise ctx.error(
                    f"{missing}; {here} is a list of {len(node)} items (index 0..{len(node) - 1})"
                )
            node = node[int(part)]
        else:
            raise ctx.error(f"{missing}; {here} is {_kind(node)}, not a mapping or a list")
    if not isinstance(node, str):
        raise ctx.error(f"value at {ctx.locator} in {ctx.file} is {_kind(node)}, not a string")
    return node


def _dict_key(mapping: dict[Any, Any], part: str) -> Any:
    if part in mapping:
        return part
    # YAML keys may be numbers or booleans; a dot path can only spell them as text.
    return next((key for key in mapping if str(key) == part), None)


def _with_value(doc: Any, parts: list[str], value: str) -> Any:
    result = copy.deepcopy(doc)
    node = result
    for part in parts[:-1]:
        node = node[_dict_key(node, part)] if isinstance(node, dict) else node[int(part)]
    if isinstance(node, dict):
        node[_dict_key(node, parts[-1])] = value
    else:
        node[int(parts[-1])] = value
    return result


def _kind(value: Any) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }
    return "null" if value is None else names.get(type(value), f"a {type(value).__name__}")


# --- JSON ------------------------------------------------------------------------------


def _json_load(content: str, ctx: _Ctx) -> Any:
    try:
        return json.loads(content)
    except json.JSONDecodeError as exc:
        raise ctx.error(
            f"{ctx.file} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None


def _json_read(content: str, ctx: _Ctx) -> str:
    return _walk(_json_load(content, ctx), ctx)


def _json_replace(content: str, ctx: _Ctx, new: str) -> str:
    _walk(_json_load(content, ctx), ctx)
    start, end = _json_span(content, ctx.parts)
    # A file written with \u escapes (json.dump's default) keeps that style.
    ascii_only = content.isascii() and "\\u" in content
    return content[:start] + json.dumps(new, ensure_ascii=ascii_only) + content[end:]


def _json_span(text: str, parts: list[str]) -> tuple[int, int]:
    """Start and end of the value at ``parts`` in ``text``, a valid document holding it."""
    decoder = json.JSONDecoder()
    pos = _skip_json_ws(text, 0)
    for part in parts:
        pos = _json_member(text, pos, part, decoder)
    return pos, decoder.raw_decode(text, pos)[1]


def _json_member(text: str, pos: int, part: str, decoder: json.JSONDecoder) -> int:
    is_object = text[pos] == "{"
    found, index = -1, 0
    pos = _skip_json_ws(text, pos + 1)
    while text[pos] not in "}]":
        if is_object:
            key, pos = decoder.raw_decode(text, pos)
            pos = _skip_json_ws(text, _skip_json_ws(text, pos) + 1)
            matches = key == part
        else:
            matches = part.isdigit() and int(part) == index
            index += 1
        if matches:
            found = pos  # keep looking: for a duplicate key the last one wins, as in json.loads
        pos = _skip_json_ws(text, decoder.raw_decode(text, pos)[1])
        if text[pos] == ",":
            pos = _skip_json_ws(text, pos + 1)
    return found


def _skip_json_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\n\r":
        pos += 1
    return pos


# --- YAML ------------------------------------------------------------------------------

# What a YAML stream may contain unescaped (ruamel's Reader), minus the characters that
# YAML reads as line breaks or a byte-order mark, which only an escape keeps intact.
_YAML_RAW = re.compile(
    "[\x09\x0a\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9 _.,;!?()'/+-]*[A-Za-z0-9_.!?)]|[A-Za-z]")
# Words YAML 1.1 loaders (PyYAML) read as booleans or null when unquoted.
_YAML11_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


@dataclass(frozen=True)
class _YamlTarget:
    """Where the scalar holding the prompt is, and what may be written there."""

    start: int
    end: int
    style: str | None
    block_ok: bool
    indent: int
    base: int
    newline: str
    comment: str = ""  # a comment on a block scalar's header line, kept with the new value


class _GuardedComposer(Composer):  # type: ignore[misc]
    """ruamel's composer with a deadline, an alias budget and no self-referencing aliases.

    Depth is ruamel's own ``max_depth``; expansion is measured on the finished node graph,
    before anything is constructed from it.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        ctx: _Ctx = self.loader.kaizen_ctx
        ctx.check_time()
        if self.parser.check_event(AliasEvent):
            event = self.parser.peek_event()
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ctx.error(f"{ctx.file} uses more than {MAX_ALIASES} YAML aliases")
            target = self.anchors.get(event.anchor)
            # A collection still being composed has no end yet: the alias would contain itself.
            if target is not None and target.end_mark is None:
                raise ctx.error(f"{ctx.file} has a YAML alias (*{event.anchor}) inside its own anchor")
        return super().compose_node(parent, index)

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node, self.loader.kaizen_ctx)
        return node


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value) if isinstance(node, SequenceNode) else []


def _check_expansion(root: Node, ctx: _Ctx) -> None:
    """Refuse a document whose aliases expand past :data:`MAX_NODES` values or :data:`MAX_DEPTH`.

    Sizes are computed once per distinct node (without recursion), so measuring a
    billion-laughs document costs as little as reading it.
    """
    measured: dict[int, tuple[int, int]] = {}  # id -> (values, depth) when expanded, capped
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in measured:
            continue
        kids = _children(node)
        if not ready:
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids if id(kid) not in measured)
            continue
        values = 1 + sum(measured[id(kid)][0] for kid in kids)
        depth = 1 + max((measured[id(kid)][1] for kid in kids), default=0)
        measured[id(node)] = (min(values, MAX_NODES + 1), min(depth, MAX_DEPTH + 1))
        ctx.check_time()
    values, depth = measured[id(root)]
    if values > MAX_NODES:
        raise ctx.error(
            f"{ctx.file} expands to more than {MAX_NODES} YAML values through its aliases; "
            "Kaizen refuses such files (a YAML alias bomb looks like this)"
        )
    if depth > MAX_DEPTH:
        raise ctx.error(f"{ctx.file} nests deeper than {MAX_DEPTH} levels once its YAML aliases are expanded")


def _yaml(ctx: _Ctx) -> YAML:
    """A safe, pure-Python YAML reader held to the limits of this module."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = _GuardedComposer
    yaml.max_depth = MAX_DEPTH
    yaml.kaizen_ctx = ctx  # type: ignore[attr-defined]
    return yaml


def _yaml_load(content: str, ctx: _Ctx) -> Any:
    try:
        return _yaml(ctx).load(content)
    except YAMLError as exc:
        raise ctx.error(f"{ctx.file} is not valid YAML: {exc}") from None


def _yaml_read(content: str, ctx: _Ctx) -> str:
    return _walk(_yaml_load(content, ctx), ctx)


def _yaml_replace(content: str, ctx: _Ctx, new: str) -> str:
    doc = _yaml_load(content, ctx)
    _walk(doc, ctx)
    target = _yaml_target(content, ctx)
    expected = _with_value(doc, ctx.parts, new)
    for literal in _yaml_literals(new, target):
        candidate = content[: target.start] + literal + content[target.end :]
        if _yaml_holds(candidate, expected, ctx):
            return candidate
    raise ctx.error(
        f"cannot write the new prompt at {ctx.locator} in {ctx.file} without changing other values"
    )


def _yaml_target(content: str, ctx: _Ctx) -> _YamlTarget:
    node: Node = _yaml(ctx).compose(content)
    base, in_flow = 0, False
    for part in ctx.parts:
        in_flow = in_flow or bool(getattr(node, "flow_style", False))
        if isinstance(node, MappingNode):
            pairs = [(k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == part]
            if not pairs:
                raise ctx.error(
                    f"value at {ctx.locator} in {ctx.file} comes from a merge key (<<); "
                    "Kaizen only edits values written in place"
                )
            key, node = pairs[-1]
            base = key.start_mark.column
        else:
            assert isinstance(node, SequenceNode)
            base = node.start_mark.column
            node = node.value[int(part)]
    if not isinstance(node, ScalarNode):  # _walk found a string, so this cannot happen
        raise ctx.error(f"value at {ctx.locator} in {ctx.file} is not a plain YAML scalar")
    if getattr(node, "anchor", None):
        raise ctx.error(
            f"value at {ctx.locator} in {ctx.file} is a YAML anchor or alias (&{node.anchor}) shared with "
            "other keys; give it its own value first"
        )
    return _yaml_span(content, node, base, in_flow)


def _yaml_span(content: str, node: ScalarNode, base: int, in_flow: bool) -> _YamlTarget:
    start, end = node.start_mark.index, node.end_mark.index
    if tag := re.match(r"![^\s]*\s+", content[start:end]):
        start += tag.end()  # an explicit tag (!!str) stays; only the scalar changes
    indent, comment = base + 2, ""
    if node.style in ("|", ">"):
        header = content[start:end].splitlines()[0]
        comment = _header_comment(header)
        lines = content[start:end].splitlines()[1:]
        indent = next((len(line) - len(line.lstrip(" ")) for line in lines if line.strip(" ")), indent)
        # The block's span runs on to the next content line; its trailing empty lines (no
        # deeper than the indentation, so not content) stay in place.
        end = start + _before_blank_tail(content[start:end], indent)
    block_ok = not in_flow and (end == len(content) or content[end] in "\r\n")
    newline = "\r\n" if content.startswith("\r\n", end) else "\n"
    return _YamlTarget(start, end, node.style, block_ok, indent, base, newline, comment)


def _header_comment(header: str) -> str:
    """The ``  # comment`` of a block scalar's header line (blanks before the first ``#`` after one)."""
    found = re.search(r"[ \t]#", header)
    if found is None:
        return ""
    start = found.start()
    while start > 0 and header[start - 1] in " \t":
        start -= 1
    return header[start:]


def _before_blank_tail(block: str, indent: int) -> int:
    """Where the trailing lines of ``block`` that hold at most ``indent`` spaces begin.

    The same as searching ``(?:\\r?\\n {0,indent})*\\Z``, walked backwards in linear
    time: that search backtracks quadratically over many blank lines.
    """
    pos = len(block)
    while (newline := block.rfind("\n", 0, pos)) >= 0:
        tail = block[newline + 1 : pos]
        if len(tail) > indent or tail.strip(" "):
            break
        pos = newline - 1 if newline > 0 and block[newline - 1] == "\r" else newline
    return pos


def _yaml_literals(text: str, target: _YamlTarget) -> Iterator[str]:
    """Candidate scalars for ``text``, the original quoting style first, double quotes last."""
    multiline = "\n" in text
    wants_block = target.block_ok and (multiline or target.style in ("|", ">"))
    if wants_block and (block := _yaml_block(text, target)) is not None:
        yield block
    if (
        not multiline
        and target.style is None
        and _PLAIN.fullmatch(text)
        and text.lower() not in _YAML11_WORDS
    ):
        yield text
    if not multiline and target.style == "'" and all(_YAML_RAW.match(ch) for ch in text):
        yield "'" + text.replace("'", "''") + "'"
    yield _yaml_double_quoted(text) + target.comment


def _yaml_block(text: str, target: _YamlTarget) -> str | None:
    body = text.rstrip("\n")
    lines = body.split("\n")
    if not any(line.strip(" ") for line in lines) or not all(_YAML_RAW.match(ch) for ch in text):
        return None
    breaks = len(text) - len(body)
    chomp = "-" if breaks == 0 else "" if breaks == 1 else "+"
    # Leading spaces on the first content line would be read as indentation: say how deep it is.
    first = next(i for i, line in enumerate(lines) if line.strip(" "))
    indicator = (
        str(target.indent - target.base) if any(line.startswith(" ") for line in lines[: first + 1]) else ""
    )
    if indicator and not 1 <= target.indent - target.base <= 9:
        return None
    pad, nl = " " * target.indent, target.newline
    # The line break that ends the last line is the one already after the span.
    return (
        f"|{indicator}{chomp}{target.comment}"
        + "".join(nl + (pad + line if line else "") for line in lines)
        + nl * (breaks - 1)
    )


def _yaml_double_quoted(text: str) -> str:
    escapes = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    out = []
    for ch in text:
        code = ord(ch)
        if ch in escapes:
            out.append(escapes[ch])
        elif _YAML_RAW.match(ch):
            out.append(ch)
        else:
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return '"' + "".join(out) + '"'


def _yaml_holds(candidate: str, expected: Any, ctx: _Ctx) -> bool:
    try:
        loaded = _yaml(ctx).load(candidate)
    except YAMLError:
        return False
    # repr() also equates documents holding NaN, which never compares equal to itself.
    return bool(loaded == expected) or repr(loaded) == repr(expected)


# --- Python ----------------------------------------------------------------------------


def _py_read(content: str, ctx: _Ctx) -> str:
    return _py_target(content, ctx)[2]


def _py_replace(content: str, ctx: _Ctx, new: str) -> str:
    start, end, _ = _py_target(content, ctx)
    candidate = content[:start] + _py_literal(new, content[start:end]) + content[end:]
    if (
        _py_target(candidate, ctx)[2] != new
    ):  # cannot happen if _py_literal is right; never write a wrong file
        raise ctx.error(f"cannot write the new prompt into {ctx.locator} in {ctx.file}")
    return candidate


def _py_target(content: str, ctx: _Ctx) -> tuple[int, int, str]:
    name = ctx.locator or ""
    if not name.isidentifier():
        raise ctx.error(
            f"python prompt files need a variable name such as SYSTEM_PROMPT as locator, got {name!r}"
        )
    try:
        tree = ast.parse(content)
    except SyntaxError as exc:
        raise ctx.error(f"{ctx.file} is not valid Python (line {exc.lineno}: {exc.msg})") from None
    values = [value for stmt in tree.body if (value := _assigned_value(stmt, name)) is not None]
    if not values:
        names = sorted({target for stmt in tree.body for target in _assigned_names(stmt)})
        raise ctx.error(
            f"no module-level assignment to {name} in {ctx.file}; "
            f"module-level names: {', '.join(names) or 'none'}"
        )
    value = values[-1]  # the last assignment is the one the module ends up with
    if isinstance(value, ast.JoinedStr):
        raise ctx.error(f"{name} in {ctx.file} is an f-string, not a plain string literal")
    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
        raise ctx.error(
            f"{name} in {ctx.file} is not a plain string literal (it is `{ast.unparse(value)[:60]}`)"
        )
    starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", content)]
    start = _char_offset(content, starts, value.lineno, value.col_offset)
    end = _char_offset(content, starts, value.end_lineno or value.lineno, value.end_col_offset or 0)
    return start, end, value.value


def _assigned_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, ast.Assign):
        return [target.id for target in stmt.targets if isinstance(target, ast.Name)]
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return [stmt.target.id]
    return []


def _assigned_value(stmt: ast.stmt, name: str) -> ast.expr | None:
    if name in _assigned_names(stmt):
        assert isinstance(stmt, (ast.Assign, ast.AnnAssign))
        return stmt.value
    return None


def _char_offset(content: str, line_starts: list[int], lineno: int, byte_col: int) -> int:
    # ast counts columns in UTF-8 bytes; we slice characters.
    start = line_starts[lineno - 1]
    line = content[start : line_starts[lineno] if lineno < len(line_starts) else len(content)]
    return start + len(line.encode("utf-8")[:byte_col].decode("utf-8"))


def _py_literal(text: str, old: str) -> str:
    """A literal for ``text`` in the style of ``old``: triple quotes for several lines."""
    quoted = old.lstrip("rRuUbBfF")
    quote = quoted[0] if quoted[:1] in ("'", '"') else '"'
    triple = quote * 3 if quoted.startswith(quote * 3) else '"""'
    candidates = [_py_quoted(text, triple)] if "\n" in text else []
    candidates += [_py_quoted(text, quote), repr(text)]
    for candidate in candidates:
        try:
            if ast.literal_eval(candidate) == text:
                return candidate
        except (SyntaxError, ValueError):
            continue
    return repr(text)


def _py_quoted(text: str, delimiter: str) -> str:
    quote, triple = delimiter[0], len(delimiter) == 3
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote and (not triple or i + 1 == len(text) or text[i + 1] == quote):
            out.append("\\" + quote)  # in triple quotes only a run of quotes, or one at the end, can close
        elif (ch == "\n" and triple) or (ch == "\t" and triple) or ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])  # \n, \r, \x00, \u2028 … as Python writes them
    return delimiter + "".join(out) + delimiter

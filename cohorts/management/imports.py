"""Import files for the management commands: CSV or JSON lines, streamed in batches to the
ingestion services, with rejected rows reported by their line in the file."""

import csv
import itertools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from cohorts.ingestion import IDENTITY_FIELDS, MAX_BATCH, BatchResult
from cohorts.models import Project

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Rejection:
    line: int  # 1-based line of the file; a CSV header is line 1
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}" if self.field else f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    imported: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class _Row:
    line: int
    item: dict | None = None
    error: str | None = None  # the row could not be read at all


def file_import(
    *,
    path: Path,
    file_format: str,
    csv_item: Callable[[dict[str, str]], dict],
    send: Callable[[list[dict]], BatchResult],
    on_rejections: Callable[[list[Rejection]], None],
    on_progress: Callable[[int], None],
) -> ImportReport:
    """Stream a file to `send` in batches of MAX_BATCH items; report rejected rows in line order."""
    report = ImportReport()
    source = _Source(path)
    rows = _csv_rows(source, csv_item) if file_format == "csv" else _jsonl_rows(source)
    batch: list[_Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= MAX_BATCH:
            _batch_send(batch, send, report, on_rejections)
            on_progress(source.take_bytes_read())
            batch = []
    if batch:
        _batch_send(batch, send, report, on_rejections)
    on_progress(source.take_bytes_read())
    return report


def _batch_send(batch: list[_Row], send, report: ImportReport, on_rejections) -> None:
    readable = [row for row in batch if row.error is None]
    rejections = [Rejection(row.line, None, row.error) for row in batch if row.error is not None]
    if readable:
        result = send([row.item for row in readable])
        report.imported += result.accepted
        rejections += [Rejection(readable[e.index].line, e.field, e.message) for e in result.errors]
    report.rejected += len({rejection.line for rejection in rejections})
    if rejections:
        on_rejections(sorted(rejections, key=lambda r: r.line))


class _Source:
    """A file read line by line as bytes, counting lines and bytes for the progress bar."""

    def __init__(self, path: Path):
        self.path = path
        self.line = 0
        self._bytes_read = 0

    def lines(self) -> Iterator[bytes]:
        with self.path.open("rb") as file:
            for raw in file:
                if self.line == 0 and raw.startswith(UTF8_BOM):
                    raw = raw[len(UTF8_BOM):]
                self.line += 1
                self._bytes_read += len(raw)
                yield raw

    def take_bytes_read(self) -> int:
        taken, self._bytes_read = self._bytes_read, 0
        return taken


def _jsonl_rows(source: _Source) -> Iterator[_Row]:
    for raw in source.lines():
        if not raw.strip():
            continue
        try:
            item = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield _Row(source.line, error=f"invalid JSON: {exc}")
            continue
        yield _Row(source.line, item=item)


def _csv_rows(source: _Source, csv_item: Callable[[dict[str, str]], dict]) -> Iterator[_Row]:
    undecodable: set[int] = set()

    def text_lines() -> Iterator[str]:
        for raw in source.lines():
            try:
                yield raw.decode()
            except UnicodeDecodeError:
                undecodable.add(source.line)
                yield raw.decode(errors="replace")

    reader = csv.reader(text_lines())
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise CommandError(f"{source.path}: line 1: unreadable CSV header: {exc}") from exc
    _check_header(source.path, header, undecodable)
    last_line = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield _Row(last_line + 1, error=f"unreadable CSV: {exc}")
            last_line = reader.line_num
            continue
        first_line, last_line = last_line + 1, reader.line_num
        if not cells:
            continue
        if undecodable and any(line in undecodable for line in range(first_line, last_line + 1)):
            yield _Row(first_line, error="not valid UTF-8")
        elif len(cells) > len(header):
            yield _Row(first_line, error=f"{len(cells)} cells, but the header names {len(header)} columns")
        else:
            # Empty cells are left out: an empty CSV cell means "not given", never "clear it".
            yield _Row(first_line, item=csv_item({name: value for name, value in zip(header, cells) if value != ""}))


def _check_header(path: Path, header: list[str], undecodable: set[int]) -> None:
    if 1 in undecodable:
        raise CommandError(f"{path}: line 1: the CSV header is not valid UTF-8")
    if "distinct_id" not in header:
        raise CommandError(f"{path}: line 1: the CSV header has no distinct_id column")
    if "" in header:
        raise CommandError(f"{path}: line 1: the CSV header has an empty column name")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise CommandError(f"{path}: line 1: the CSV header repeats {', '.join(repeated)}")


def profile_item_from_csv(row: dict[str, str]) -> dict:
    """distinct_id and the identity columns as they are; any other column is a `set` property."""
    item = {name: row.pop(name) for name in ("distinct_id", *IDENTITY_FIELDS) if name in row}
    if row:
        item["set"] = row
    return item


def event_item_from_csv(row: dict[str, str]) -> dict:
    """distinct_id, event and time (ISO 8601 or unix seconds); any other column is a property."""
    item = {name: row.pop(name) for name in ("distinct_id", "event", "time") if name in row}
    if "time" in item:
        try:
            item["time"] = float(item["time"])
        except ValueError:
            pass  # an ISO 8601 string: the service parses and checks it
    if row:
        item["properties"] = row
    return item


def file_format_of(path: Path, given: str | None) -> str:
    if given:
        return given
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise CommandError(f"{path}: unknown file type; name it .csv, .jsonl or .ndjson, or pass --format") from None


def distinct_ids_from_file(path: Path) -> Iterator[tuple[int, str]]:
    """(line, distinct id) for each id of a file of one id a line, or of a CSV whose header has a
    distinct_id column. Ids are kept as written (the service refuses surrounding whitespace rather
    than guessing); empty lines and cells are skipped."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        first = file.readline()
        header = next(csv.reader([first]), [])
        if "distinct_id" in header:
            column = header.index("distinct_id")
            reader = csv.reader(file)
            line = 2
            for cells in reader:
                if len(cells) > column and cells[column].strip():
                    yield line, cells[column]
                line = reader.line_num + 2  # the next row's first line (the header was line 1)
            return
        if path.suffix.lower() == ".csv":
            raise CommandError(f"{path}: line 1: the CSV header has no distinct_id column")
        for number, line_text in enumerate(itertools.chain([first], file), start=1):
            distinct_id = _without_line_end(line_text)
            if distinct_id.strip():
                yield number, distinct_id


def _without_line_end(line: str) -> str:
    # Only the line's own end: any other whitespace is part of the id as written.
    for end in ("\r\n", "\n", "\r"):
        if line.endswith(end):
            return line[:-len(end)]
    return line


class ImportCommand(BaseCommand):
    """An import command: FILE and --project in, a progress bar, rejected rows and a summary out."""

    # Set by each command (as staticmethods): how a CSV row becomes an item, and the ingestion
    # service its batches go to (keyword-only `project` and `items`).
    csv_item: Callable[[dict[str, str]], dict]
    ingest: Callable[..., BatchResult]

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="a .csv file with a header row, or .jsonl/.ndjson")
        parser.add_argument("--project", type=int, required=True, help="project id")
        parser.add_argument("--format", choices=["csv", "jsonl"], default=None, help="override the file extension")
        parser.add_argument("--strict", action="store_true", help="exit non-zero if any row was rejected")

    def handle(self, *args, file: Path, project: int, format: str | None, strict: bool, **options):
        target = Project.objects.filter(pk=project).first()
        if target is None:
            raise CommandError(f"Project {project} does not exist.")
        file_format = file_format_of(file, format)
        try:
            size = file.stat().st_size
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from exc
        progress = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=file.name,
                        file=sys.stderr, disable=None)

        def show(rejections: list[Rejection]) -> None:
            with progress.external_write_mode():
                for rejection in rejections:
                    self.stdout.write(str(rejection))

        try:
            report = file_import(
                path=file,
                file_format=file_format,
                csv_item=self.csv_item,
                send=lambda items: self.ingest(project=target, items=items),
                on_rejections=show,
                on_progress=progress.update,
            )
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}") from exc
        finally:
            progress.close()
        self.stdout.write(f"imported {report.imported}, rejected {report.rejected}")
        if strict and report.rejected:
            raise CommandError(f"rows rejected: {report.rejected} (--strict)")

"""The progress bar of long work (convert, lint, dedup, verify, export, publish)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


class Bar:
    """A rich progress bar that appears on its first update: whatever a command checks before its work starts
    (inputs, options, the output folder) fails with its one error line and no bar on screen.

    Columns: ``label``, the bar, percent, ``{count} {unit}``, ``{rate} {unit}/s``, elapsed, time left (ETA), then
    ``extra`` (rich format strings over the task's fields, e.g. ``"{task.fields[rejected]} rejected"``). Drawn on a
    terminal only: a log (stderr redirected) gets the summary and the errors, not frames of a bar.
    """

    def __init__(
        self, label: str, unit: str, console: Console, *, disable: bool = False, extra: tuple[str, ...] = (), **fields: Any
    ) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[count]} " + unit),
            TextColumn("{task.fields[rate]} " + unit + "/s"),
            *(TextColumn(x) for x in extra),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=disable or not console.is_terminal,
        )
        self._fields = {"count": 0, "rate": "-", **fields}
        self._task: Any = None

    def update(self, *, count: int | None = None, **kw: Any) -> None:
        """``completed``/``total`` drive the bar and the ETA; ``count`` the count and rate columns."""
        if self._task is None:
            self.progress.start()
            self._task = self.progress.add_task("", total=None, **self._fields)
        if count is not None:
            elapsed = self.progress.tasks[0].elapsed or 0
            kw.update(count=f"{count:,}", rate=f"{count / elapsed:,.0f}" if elapsed > 0 else "-")
        self.progress.update(self._task, **kw)

    def finish(self) -> None:
        """Fill the bar at the end of the work (a total that was an estimate)."""
        if self._task is not None:
            task = self.progress.tasks[0]
            self.progress.update(self._task, completed=task.total if task.total is not None else task.completed)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self.progress.stop()

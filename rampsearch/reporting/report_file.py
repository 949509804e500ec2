"""results/<study>/report.html: the study read from its storage and written as one page."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..fidelity.tables import FIDELITY_SCORES, fidelity_tables
from ..ranking.leaderboard import leaderboard
from ..ranking.race_results import stored_race
from ..study.storage import StudyLocation, study_settings
from ..study.stored import study_at
from .report import build_report


def write_report(location: StudyLocation, out: Path | None = None) -> Path:
    """Write the report of the study at ``location`` (to ``out``, default report.html in its
    folder) and return its path."""
    opened = study_at(location)
    study, space = opened.study, opened.space
    frame = leaderboard(study, space.base.depths)
    fidelity = {score: fidelity_tables(study, space.base.depths, score)[:2]
                for score in FIDELITY_SCORES}
    fidelity = {score: pair for score, pair in fidelity.items() if not pair[0].empty}
    if frame.empty and not fidelity:
        raise UserError(f"study {location.name!r} has no trained trial yet; nothing to report.")
    budget_flops = study_settings(study).budget.flops
    page, _ = build_report(study, frame, space.base.depths, budget_flops,
                           stored_race(study, frame),
                           fidelity=fidelity or None)
    path = out or location.folder / "report.html"
    path.write_text(page, encoding="utf-8")
    return path

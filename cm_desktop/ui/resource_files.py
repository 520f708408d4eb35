"""Files the app ships: icon, style sheet, the sample profile (Banking77) and dataset loading.

Found next to the source tree (a clone or an editable install) or, for a normal install, under
`<prefix>/share/cm-desktop/resources` (pyproject's data-files). No Qt here: the sample profile is
also useful without the GUI.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

from cm_desktop.datasets import DatasetError, Query, read_queries  # noqa: F401 (the one reader)

SAMPLE_PROFILE_NAME = "Banking77 (sample)"
SAMPLE_PROFILE_DESCRIPTION = ("The 77 intents of the Banking77 dataset (Casanueva et al. 2020, CC BY 4.0) "
                              "with a few dozen sample queries.")


def _candidates() -> list[Path]:
    here = Path(__file__).resolve()
    found = [here.parents[2] / "resources"]
    for base in {sys.prefix, sys.base_prefix, sysconfig.get_path("data")}:
        found.append(Path(base) / "share" / "cm-desktop" / "resources")
    found.append(Path.home() / ".local" / "share" / "cm-desktop" / "resources")
    return found


def resource_dir() -> Path:
    for path in _candidates():
        if (path / "sample_profile" / "responses.txt").is_file():
            return path
    raise FileNotFoundError("the app's resources folder was not found (looked in: "
                            + ", ".join(str(p) for p in _candidates()) + "); reinstall CM Desktop")


def resource(name: str) -> Path:
    return resource_dir() / name


def sample_responses() -> list[str]:
    text = resource("sample_profile/responses.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def sample_queries() -> list[Query]:
    return read_queries(resource("sample_profile/queries.jsonl"))


def ensure_sample_profile(bank) -> bool:
    """Create the sample profile if the bank has none of that name; True if it was created."""
    names = {p.name for p in bank.list_profiles()}
    if SAMPLE_PROFILE_NAME in names:
        return False
    bank.create_profile(SAMPLE_PROFILE_NAME, sample_responses(), description=SAMPLE_PROFILE_DESCRIPTION)
    return True

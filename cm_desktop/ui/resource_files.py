"""Files the app ships: icon, style sheet, the sample profile (Banking77) and dataset loading.

Found next to the source tree (a clone or an editable install) or, for a normal install, under
`<prefix>/share/cm-desktop/resources` (pyproject's data-files). No Qt here: the sample profile is
also useful without the GUI.
"""

from __future__ import annotations

import json
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from cm_desktop.datasets import DatasetError, Query, read_queries  # noqa: F401 (the one reader)

SAMPLE_PROFILE_NAME = "Banking77 (sample)"
SAMPLE_PROFILE_DESCRIPTION = ("The 77 intents of the Banking77 dataset (Casanueva et al. 2020, CC BY 4.0) "
                              "with 770 sample queries (10 per intent).")
STYLE_PROFILE_NAME = "Answer style (sample)"
STYLE_PROFILE_DESCRIPTION = ("How you like answers written (short answer, step by step, just the "
                             "code, ...): rate which style you mean for which kind of question.")
# profile name -> (folder under resources/, description): the sample profiles the app ships
SAMPLE_PROFILES = {SAMPLE_PROFILE_NAME: ("sample_profile", SAMPLE_PROFILE_DESCRIPTION),
                   STYLE_PROFILE_NAME: ("answer_style", STYLE_PROFILE_DESCRIPTION)}


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


def sample_responses(profile: str = SAMPLE_PROFILE_NAME) -> list[str]:
    folder = SAMPLE_PROFILES[profile][0]
    text = resource(f"{folder}/responses.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Guidance:
    response: str
    text: str
    key_facts: tuple[str, ...] = ()   # what a reply should state (used by the answer benchmark)


def sample_guidance(profile: str = SAMPLE_PROFILE_NAME) -> list[Guidance]:
    """The guidance shipped with a sample profile (guidance.jsonl: response, guidance, and
    optionally key_facts)."""
    path = resource(f"{SAMPLE_PROFILES[profile][0]}/guidance.jsonl")
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            out.append(Guidance(obj["response"], obj["guidance"], tuple(obj.get("key_facts", ()))))
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}, line {lineno}: not a guidance record ({exc})") from exc
    return out


def sample_queries(profile: str = SAMPLE_PROFILE_NAME) -> list[Query]:
    return read_queries(resource(f"{SAMPLE_PROFILES[profile][0]}/queries.jsonl"))


def ensure_sample_profile(bank) -> bool:
    """Create the sample profiles the bank lacks, each with its guidance (one transaction per
    profile). True if any was created."""
    names = {p.name for p in bank.list_profiles()}
    created = False
    for name, (_, description) in SAMPLE_PROFILES.items():
        if name in names:
            continue
        with bank.transaction():
            bank.create_profile(name, sample_responses(name), description=description)
            bank.set_guidances(name, {g.response: g.text for g in sample_guidance(name)})
        created = True
    return created

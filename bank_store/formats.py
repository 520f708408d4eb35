"""Bank files, one import for callers: reading (reading.py), import planning and applying
(importing.py) and exporting (exporting.py). See each module for its rules."""

from .exporting import export_native, export_paper, paper_mapping
from .importing import (ImportPlan, ImportPreview, ImportReport, apply_import,
                        compute_import_preview, import_file, paper_response_set, plan_import)
from .reading import (MAX_BANK_FILE_BYTES, MAX_FILE_BYTES, NATIVE_FORMAT, NATIVE_VERSION,
                      ParsedBankFile, read_bank_file)

__all__ = [
    "ImportPlan", "ImportPreview", "ImportReport", "MAX_BANK_FILE_BYTES", "MAX_FILE_BYTES",
    "NATIVE_FORMAT", "NATIVE_VERSION", "ParsedBankFile", "apply_import",
    "compute_import_preview", "export_native", "export_paper", "import_file",
    "paper_mapping", "paper_response_set", "plan_import", "read_bank_file",
]

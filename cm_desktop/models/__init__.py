"""The model library: local GGUFs (embedded, downloaded, added), their metadata and memory needs,
downloads from a Hugging Face repo, and a short catalogue. No Qt."""

from cm_desktop.models.catalogue import CATALOGUE, CatalogueEntry
from cm_desktop.models.library import (EMBEDDED_ALIAS, LocalModel, ModelLibrary,
                                       ModelLibraryError, models_dir)

__all__ = ["CATALOGUE", "CatalogueEntry", "EMBEDDED_ALIAS", "LocalModel", "ModelLibrary",
           "ModelLibraryError", "models_dir"]

"""``storage``: where the cache, the evidence records and the images live."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edge.config.types import Section


class StorageConfig(Section):
    """Paths and retention; the records file must be on disk that survives power cuts."""

    dir: Path = Field(Path("/var/lib/gate-edge"),
                      description="directory for cache.db, records.db and evidence/")
    retention_days: int = Field(
        365, ge=30, description="passages older than this may be purged once the centre acked them")
    min_free_mb: int = Field(
        500, ge=10, description="below this much free disk, raise an alarm and stop saving images")

    @property
    def cache_path(self) -> Path:
        """Manifest cache file."""
        return self.dir / "cache.db"

    @property
    def records_path(self) -> Path:
        """Evidence records file."""
        return self.dir / "records.db"

    @property
    def evidence_dir(self) -> Path:
        """Directory of evidence images, named by passage id."""
        return self.dir / "evidence"

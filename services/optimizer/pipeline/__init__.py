"""One optimization job: data → baseline → optimizer → rendered candidates → export → held-out test.

Pure parts need no DSPy: :mod:`.dataset` (the split, the label set) and :mod:`.candidates`
(grounded bodies, vetting, rendering under the prompt contract, the choice). Every use of
DSPy internals is in :mod:`.dspy_pinned`; :mod:`.scoring` calls LiteLLM the way the
application does; :mod:`.run` puts the steps together.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm loads: no price fetch

"""`import backdrop` gives the layer without the data stack: of msgp only its errors (the layer's
errors are msgp.MSGPErrors), no h5py or scipy until asked for."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = "{'msgp', 'h5py', 'scipy'}"
# What the layer may load of msgp: the package (whose other modules load on first access), the
# error family and the version the package states.
MSGP_ERRORS = ["msgp", "msgp.errors", "msgp.version"]


def loaded_after(statement: str) -> list[str]:
    """The modules of msgp, h5py and scipy a fresh interpreter holds after ``statement``."""
    script = (f"import json, sys; {statement}; "
              f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY})))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("statement", [
    "import backdrop; from backdrop import Backdrop",
    "from backdrop import Backdrop, backdrop, draw_mask, mask_gradient",
    "import backdrop.distributed",
])
def test_the_layer_imports_torch_and_nothing_of_the_data_stack(statement):
    assert loaded_after(statement) == MSGP_ERRORS


def test_the_layers_errors_are_msgp_errors():
    import msgp
    from backdrop import Backdrop, draw_mask

    for call, builtin in ((lambda: Backdrop(1.5), ValueError), (lambda: Backdrop("half"), TypeError),
                          (lambda: draw_mask([1.0], 0.5), TypeError)):
        with pytest.raises(msgp.MSGPError) as raised:
            call()
        assert isinstance(raised.value, builtin)


def test_the_models_are_still_there_when_asked_for():
    import backdrop

    assert backdrop.models.MultiScaleNet.__name__ == "MultiScaleNet"
    from backdrop import models

    assert models is backdrop.models
    assert "models" in backdrop.__all__ and "models" in dir(backdrop)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        backdrop.nothing  # noqa: B018


def test_the_models_need_the_spectra_but_not_the_files_or_the_oracle():
    loaded = loaded_after("import backdrop.models")
    assert "msgp.spectral" in loaded
    assert not {"h5py", "msgp.io", "msgp.oracle", "scipy.linalg"} & set(loaded)

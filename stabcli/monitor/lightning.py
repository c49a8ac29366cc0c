"""The monitor in a Lightning ``Trainer``: one callback (extra ``stabcli[lightning]``).

    from stabcli.monitor.lightning import StabilityCallback
    trainer = lightning.Trainer(max_steps=1000, callbacks=[StabilityCallback()])
    trainer.fit(module, data)        # writes <default_root_dir>/stabcli

The callback watches ``trainer.optimizers[optimizer_index]`` from ``on_train_start`` to
``on_train_end`` with the LightningModule's parameter names, on the global-zero process
only; a fit that stops on an exception closes the run as interrupted. It subclasses the
``Callback`` of ``lightning`` when that is installed, else of ``pytorch_lightning``.
Importing this module imports Lightning; ``import stabcli.monitor`` does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

try:
    import lightning as framework
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - the older package name
    try:
        import pytorch_lightning as framework  # type: ignore[no-redef]
        from pytorch_lightning.callbacks import Callback  # type: ignore[assignment]
    except ImportError as err:
        raise ImportError(
            "stabcli.monitor.lightning needs Lightning: pip install 'stabcli[lightning]'"
        ) from err

from stabcli.monitor.monitor import Monitor

#: The run directory under ``Trainer.default_root_dir`` when none is given.
DEFAULT_FOLDER = "stabcli"


class StabilityCallback(Callback):  # type: ignore[misc]
    """Watch a Lightning ``Trainer``'s optimizer with :func:`stabcli.monitor.watch`.

    Args:
        run_dir: where the run directory goes; None: ``<default_root_dir>/stabcli``;
            False: none.
        optimizer_index: which of ``trainer.optimizers`` to watch.
        **options: :func:`stabcli.monitor.watch`'s keyword options (``every``,
            ``log_every``, ``on_warning``, ``sync_every``, ``measure``, ``overwrite``).
    """

    def __init__(
        self,
        run_dir: str | Path | Literal[False] | None = None,
        optimizer_index: int = 0,
        **options: Any,
    ):
        self.run_dir = run_dir
        self.optimizer_index = optimizer_index
        self.options = options
        self.monitor: Monitor | None = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        if self.monitor is not None:  # a second fit() with the same callback
            self.monitor.close()
        run_dir = self.run_dir
        if run_dir is None:
            run_dir = Path(trainer.default_root_dir) / DEFAULT_FOLDER
        self.monitor = Monitor(
            trainer.optimizers[self.optimizer_index],
            run_dir or None,
            model=pl_module,
            extra_versions={"lightning": framework.__version__},
            **self.options,
        )

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.monitor is not None:
            self.monitor.close()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if self.monitor is not None:
            self.monitor.close(interrupted=True)

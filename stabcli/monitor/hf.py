"""The monitor in a Hugging Face ``Trainer``: one callback (extra ``stabcli[hf]``).

    from stabcli.monitor.hf import StabilityCallback
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      callbacks=[StabilityCallback()])   # writes <output_dir>/stabcli
    trainer.train()

The callback watches the optimizer the Trainer builds (``TrainingArguments.adam_beta1`` is
γ, ``adam_beta2`` is β) from ``on_train_begin`` to ``on_train_end``, with the model's
parameter names, on the main process only. The Trainer has no event for a training that
stops on an error; call ``callback.monitor.close(interrupted=True)`` yourself there.
Importing this module imports ``transformers``; ``import stabcli.monitor`` does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

try:
    import transformers
    from transformers import TrainerCallback
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError("stabcli.monitor.hf needs transformers: pip install 'stabcli[hf]'") from err

from stabcli.monitor.monitor import Monitor

#: The run directory under ``TrainingArguments.output_dir`` when none is given.
DEFAULT_FOLDER = "stabcli"


class StabilityCallback(TrainerCallback):  # type: ignore[misc]
    """Watch a ``Trainer``'s optimizer with :func:`stabcli.monitor.watch`.

    Args:
        run_dir: where the run directory goes; None: ``<output_dir>/stabcli``; False: none.
        **options: :func:`stabcli.monitor.watch`'s keyword options (``every``,
            ``log_every``, ``on_warning``, ``sync_every``, ``measure``, ``overwrite``).
    """

    def __init__(self, run_dir: str | Path | Literal[False] | None = None, **options: Any):
        self.run_dir = run_dir
        self.options = options
        self.monitor: Monitor | None = None

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        if not state.is_world_process_zero:
            return
        if self.monitor is not None:  # a second train() on the same Trainer
            self.monitor.close()
        run_dir = self.run_dir
        if run_dir is None:
            run_dir = Path(args.output_dir) / DEFAULT_FOLDER
        self.monitor = Monitor(
            optimizer,
            run_dir or None,
            model=model,
            extra_versions={"transformers": transformers.__version__},
            **self.options,
        )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.monitor is not None:
            self.monitor.close()

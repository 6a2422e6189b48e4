"""Many processes, one run: ``torchrun`` ranks as one leader (rank 0) and workers that lend it their replicas.

Under ``torchrun --nproc-per-node N [--nnodes M ...] alignlab <study> ...`` every process starts the same command.
Rank 0, the leader, runs the study exactly as one process does: it alone opens the run directory, reads and writes
the request cache, appends samples and renders the report. Every other rank, a worker, only serves the leader
(:func:`lead`): it loads a replica of each model the leader loads (:func:`replicate`, called by
``runs.study.load_item``) and computes the share of each model call the leader hands it. The leader's
:class:`~alignlab.models.base.Model` cuts the requests it did not find in its cache into one contiguous shard per
rank, computes its own, gathers the others' and caches them all, so one run directory and one cache hold every
result and ``--resume`` works with any number of processes.

Messages are pickled objects over a gloo process group (requests and results, never tensors), so the same code runs
on CPUs, GPUs and several machines; on GPUs each rank uses ``cuda:<LOCAL_RANK>``. Without torchrun (``WORLD_SIZE``
unset or 1) every function here is a no-op and nothing is imported from ``torch.distributed``.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import os
import pickle
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")
Load = Callable[[str, str, bool], Any]  # (spec, dtype, cache) -> Model, as runs.study.load_item's ``load``

TIMEOUT_ENV = "ALIGNLAB_DIST_TIMEOUT_S"  # how long a worker waits for the leader's next message (default 24 h)
_LEADING = False  # True in rank 0 while it runs a study with workers serving it
_OWN_GROUP = False  # True when setup() created the process group (not influence's or accelerate's code)
_IDS = itertools.count()


def launched() -> bool:
    """True in a process that torchrun (or any launcher setting ``WORLD_SIZE > 1``) started."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> tuple[int, int]:
    """Join the launcher's process group (gloo) unless some code already did; returns ``(rank, world_size)``."""
    global _OWN_GROUP
    if not launched():
        return 0, 1
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        _OWN_GROUP = True
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))  # "cuda" now means this rank's GPU
        timeout = dt.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, 24 * 3600)))
        dist.init_process_group("gloo", timeout=timeout)
    return dist.get_rank(), dist.get_world_size()


def rank() -> int:
    return setup()[0] if launched() else 0


def world_size() -> int:
    return setup()[1] if launched() else 1


def leading() -> bool:
    """True in the leader while workers serve it (so a model call may be sharded)."""
    return _LEADING


def lead(call: Callable[[], T]) -> T | None:
    """Run ``call`` on rank 0 while every other rank serves it; returns ``call()`` on rank 0 and None on workers.

    Without a launcher, or inside a ``lead`` already, this is just ``call()``. The workers are released when
    ``call`` returns or raises.
    """
    global _LEADING
    if not launched() or _LEADING:
        return call()
    if setup()[0] != 0:
        _serve()
        return None
    _LEADING = True
    try:
        return call()
    finally:
        _LEADING = False
        _broadcast(("stop",))


def led(on_workers: Callable[[], Any]) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorate a command so that :func:`lead` runs it: the command itself on rank 0 (and without a launcher), and
    ``on_workers()`` returned on every other rank once it has served the leader."""

    def wrap(command: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            out = lead(lambda: command(*args, **kwargs))
            return on_workers() if out is None else out

        return run

    return wrap


class Replicas:
    """The leader's handle on one model loaded by every worker."""

    def __init__(self, spec: str, dtype: str, load: Load, fingerprint_id: str) -> None:
        if picklable(load) is None:
            raise TypeError(f"{load!r} cannot be sent to the torchrun workers: give a module-level function")
        self.ident = next(_IDS)
        self.spec = spec
        self.closed = False
        _broadcast(("load", self.ident, spec, dtype, load))
        replies = _gather(None)
        for number, reply in enumerate(replies[1:], start=1):
            if isinstance(reply, str) and reply.startswith("error:"):
                self.close()
                raise RuntimeError(f"torchrun rank {number} could not load {spec}: {reply[len('error:'):]}")
            if reply != fingerprint_id:
                self.close()
                raise RuntimeError(f"torchrun rank {number} loaded {spec} with fingerprint {reply}, rank 0 with "
                                   f"{fingerprint_id}: every machine must hold the same weights and tokenizer")

    def run(self, method: str, shards: Sequence[Sequence[Any]], own: Callable[[Sequence[Any]], list[Any]]
            ) -> list[list[Any]]:
        """Every rank's results for its shard (``shards[rank]``); rank 0 computes its own with ``own``."""
        _broadcast(("call", self.ident, method))
        mine = _scatter([list(s) for s in shards])
        try:
            results, failure = own(mine), None
        except Exception as err:  # the others are waiting in the gather: take their answers first, raise after
            results, failure = [], err
        replies = _gather(None)  # rank 0's own results stay here
        if failure is not None:
            raise failure
        for number, out in enumerate(replies[1:], start=1):
            if isinstance(out, BaseException):
                raise type(out)(f"torchrun rank {number}: {out}") if _rebuildable(out) else RuntimeError(
                    f"torchrun rank {number}: {type(out).__name__}: {out}")
        return [results, *replies[1:]]

    def close(self) -> None:
        if not self.closed and _LEADING:
            _broadcast(("close", self.ident))
        self.closed = True


def replicate(spec: str, dtype: str, load: Load, fingerprint_id: str) -> Replicas | None:
    """Have every worker load ``spec`` as the leader did, with ``load(spec, dtype, False)`` (no cache: rank 0's is
    the run's one cache); None when no worker serves this process. ``load`` must pickle (a module-level function)."""
    if not _LEADING or world_size() < 2:
        return None
    return Replicas(spec, dtype, load, fingerprint_id)


def on_rank0(make: Callable[[], T], follow: Callable[[Any], T], share: Callable[[T], Any]) -> T:
    """``make()`` on rank 0 and ``follow(share(made))`` on the other ranks, for commands that every rank runs in
    full (``accelerate launch`` training, or a command that does not shard its model calls): one run directory,
    written by rank 0. Outside such a launch, and inside :func:`lead` or code that joined its own process group
    (influence), this is ``make()``."""
    if not launched() or _LEADING:
        return make()
    import torch.distributed as dist

    if dist.is_initialized() and not _OWN_GROUP:
        return make()
    if setup()[0] != 0:
        shared = _broadcast(None)
        if isinstance(shared, tuple) and shared and shared[0] == "error":
            raise RuntimeError(f"rank 0: {shared[1]}")
        return follow(shared)
    try:
        made = make()
    except BaseException as err:
        _broadcast(("error", f"{type(err).__name__}: {err}"))
        raise
    _broadcast(share(made))
    return made


def shards(items: Sequence[T], parts: int) -> list[list[T]]:
    """``items`` cut into ``parts`` contiguous shards whose sizes differ by at most one (the first are longer)."""
    size, extra = divmod(len(items), parts)
    bounds = [0]
    for part in range(parts):
        bounds.append(bounds[-1] + size + (part < extra))
    return [list(items[lo:hi]) for lo, hi in itertools.pairwise(bounds)]


# -- the worker side ---------------------------------------------------------------------------------------------


def _serve() -> None:
    """A worker's life: load, compute and close models as the leader says, until it says stop."""
    models: dict[int, Any] = {}
    try:
        while True:
            message = _broadcast(None)
            kind = message[0]
            if kind == "stop":
                return
            if kind == "load":
                _, ident, spec, dtype, load = message
                try:
                    models[ident] = load(spec, dtype, False)
                    _gather(models[ident].fingerprint_id)
                except BaseException as err:  # noqa: BLE001 - sent to the leader, which raises it
                    _gather(f"error:{type(err).__name__}: {err}")
            elif kind == "call":
                _, ident, method = message
                shard = _scatter(None)
                try:
                    reply: Any = models[ident].compute(method, shard)
                except Exception as err:  # noqa: BLE001 - sent to the leader, which raises it
                    reply = err if picklable(err) is not None else RuntimeError(f"{type(err).__name__}: {err}")
                _gather(reply)
            elif kind == "close":
                model = models.pop(message[1], None)
                if model is not None:
                    model.close()
    finally:
        for model in models.values():
            model.close()


# -- collectives (rank 0 is the root of every one) ---------------------------------------------------------------


def _broadcast(obj: Any) -> Any:
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _scatter(objs: list[Any] | None) -> Any:
    import torch.distributed as dist

    out: list[Any] = [None]
    dist.scatter_object_list(out, objs, src=0)
    return out[0]


def _gather(obj: Any) -> list[Any]:
    import torch.distributed as dist

    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out or []


def picklable(obj: T) -> T | None:
    """``obj`` when it pickles (a module-level function does, a lambda or closure does not), else None."""
    try:
        pickle.dumps(obj)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    return obj


def _rebuildable(err: BaseException) -> bool:
    try:
        type(err)("probe")
    except Exception:  # noqa: BLE001 - an exception class whose constructor needs other arguments
        return False
    return True

"""ONNX Runtime backend: one InferenceSession per model version."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelpress.serving.errors import BadRequestError, InternalError, ModelLoadError
from modelpress.serving.graph_manifest import UnsignedManifest, sign, unreadable
from modelpress.serving.manifest import ManifestError, ModelManifest, TensorSpec
from modelpress.serving.protocol.datatypes import ORT_TO_V2, V2_TO_NUMPY
from modelpress.serving.runtime.base import ModelRuntime
from modelpress.serving.runtime.providers import (
    ProviderConfig,
    ProviderError,
    check_session_providers,
    ort_available,
    select_providers,
    use_io_binding,
)
from modelpress.serving.runtime.shared_weights import SHARED, ScanError, SharedTable
from modelpress.serving.runtime.thread_pools import choose_pool, shared_pool_sizes

log = logging.getLogger("modelpress.serving.runtime")


@dataclass(frozen=True)
class RuntimeOptions:
    providers: ProviderConfig = field(default_factory=ProviderConfig)
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    # The server's settings turn the shared pools on; off here, because once ORT's global pools exist no later
    # session of the process may have its own (serving/runtime/thread_pools.py).
    shared_thread_pool: bool = False
    allow_spinning: bool = False  # pools of their own only: the shared pool always spins (ORT's default)
    warmup_runs: int = 2
    warmup_batch_sizes: tuple[int, ...] = (1,)
    cpu_mem_arena: bool = False
    mem_pattern: bool = True
    shared_cpu_allocator: bool = False
    share_weights: bool = True
    # Text models: split a batch into runs of similar length when that saves more padded tokens than a run
    # costs (serving/batching/lengths.py); None runs every batch whole, padded to its longest text.
    length_group_overhead_tokens: int | None = None


def warmup_inputs(specs: list[TensorSpec], rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Representative inputs for warm-up.

    Dynamic dims become ``rows`` (first) or 1; floats are standard normal (what a standardized feature looks
    like), integers are 0 (a valid index for embeddings), strings are a word.
    """
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = [(rows if i == 0 else 1) if d == -1 else d for i, d in enumerate(spec.shape)]
        dtype = V2_TO_NUMPY[spec.datatype]
        if spec.datatype == "BYTES":
            feeds[spec.name] = np.full(shape, "warm up", dtype=object)
        elif dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[spec.name] = np.zeros(shape, dtype=dtype)
    return feeds


class OnnxModel(ModelRuntime):
    def __init__(self, manifest: ModelManifest, version_dir: Path, options: RuntimeOptions) -> None:
        super().__init__(manifest)
        self.version_dir = version_dir
        self.options = options
        self._session = None
        self._providers: list[str] = []
        self._io_binding = False
        self._thread_pool = ""  # "shared" (the process's) or "own", once loaded
        self._shared: dict[str, SharedTable] = {}  # the tables this session reads from the process-wide copy
        self.bind_device = "cuda"  # where IOBinding leaves outputs; "cpu" lets tests exercise the path here

    @property
    def ready(self) -> bool:
        return self._session is not None

    @property
    def providers(self) -> list[str]:
        return list(self._providers)

    def session_options(self) -> dict[str, str]:
        """Threading and spinning options the live session was created with (for logs and tests)."""
        if self._session is None:
            return {}
        so = self._session.get_session_options()
        if self._thread_pool == "shared":
            # The session's own options keep 0 / 0: the shared pools' sizes (as asked of ORT, 0 = its default;
            # unknown when something else in the process made them) are what it runs with, and they spin.
            sizes = shared_pool_sizes()
            intra, inter = (str(n) for n in sizes) if sizes else ("unknown", "unknown")
            spinning = "1"
        else:
            intra, inter = str(so.intra_op_num_threads), str(so.inter_op_num_threads)
            spinning = so.get_session_config_entry("session.intra_op.allow_spinning")
        return {
            "thread_pool": self._thread_pool,
            "intra_op_threads": intra,
            "inter_op_threads": inter,
            "intra_op_spinning": spinning,
            "cpu_mem_arena": str(int(so.enable_cpu_mem_arena)),
            "mem_pattern": str(int(so.enable_mem_pattern)),
            "shared_cpu_allocator": _config_entry(so, USE_ENV_ALLOCATORS) or "0",
        }

    @property
    def io_binding(self) -> bool:
        return self._io_binding

    def force_io_binding(self, device: str) -> None:
        """Use the IOBinding path with outputs on ``device`` (tests run it on "cpu"; production picks it for CUDA)."""
        self._io_binding = True
        self.bind_device = device

    def load(self) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        thread_pool = self._threading(so)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.enable_cpu_mem_arena = self.options.cpu_mem_arena
        so.enable_mem_pattern = self.options.mem_pattern
        if self.options.shared_cpu_allocator:
            register_shared_cpu_allocator()
            so.add_session_config_entry(USE_ENV_ALLOCATORS, "1")
        path = self.version_dir / self.manifest.model_file
        bare = isinstance(self.manifest, UnsignedManifest)
        try:
            available, known = ort_available()
            chosen = select_providers(self.options.providers, available, known)
            shared = self._shared_tables(path, [p for p, _ in chosen])
            for name, table in shared.items():
                so.add_initializer(name, table.value)
            session = ort.InferenceSession(
                str(path), so, providers=[p for p, _ in chosen], provider_options=[o for _, o in chosen]
            )
            used = session.get_providers()
            check_session_providers(self.options.providers, used)
        except ProviderError as e:
            raise ModelLoadError(f"{self.manifest.name} v{self.manifest.version}: {e}") from e
        except Exception as e:  # ORT raises its own pybind types for corrupt or unsupported models
            reason = unreadable(path, e) if bare else f"ONNX Runtime refused {path}: {e}"
            raise ModelLoadError(f"{self.manifest.name} v{self.manifest.version}: {reason}") from e
        if bare:  # a bare model.onnx: its signature is this session's, nothing to check it against
            self.manifest = self._signed(self.manifest, path, session)
        else:
            _check_signature(self.manifest, session, check_inputs=self.manifest.tokenizer is None)
        self._prepare(session)
        self._session = session
        self._thread_pool = thread_pool
        self._shared = shared
        self._providers = used
        strings = any(s.datatype == "BYTES" for s in [*self.manifest.inputs, *self.manifest.outputs])
        self._io_binding = use_io_binding(
            used, has_strings=strings and self.manifest.tokenizer is None, setting=self.options.providers.io_binding
        )
        if self._io_binding:
            log.info("%s v%s: inputs and outputs bound with IOBinding", self.manifest.name, self.manifest.version)
        log.info("loaded %s v%s on %s %s", self.manifest.name, self.manifest.version, used, self.session_options())
        self._warm_up()

    def _signed(self, manifest: UnsignedManifest, path: Path, session) -> ModelManifest:
        """A bare model's manifest completed from the serving session: ONNX Runtime parses the file once."""
        try:
            return sign(manifest, path, session)
        except ManifestError as e:  # not servable (a ZipMap output, say): the message names the tensor
            raise ModelLoadError(f"{manifest.name} v{manifest.version}: {e}") from e

    def _threading(self, so) -> str:
        """Put the session on the process's shared thread pools, or give it its own; returns which."""
        choice = choose_pool(
            self.options.shared_thread_pool, self.options.intra_op_threads, self.options.inter_op_threads
        )
        if choice.warning:
            log.warning("%s v%s: %s", self.manifest.name, self.manifest.version, choice.warning)
        if choice.shared:
            so.use_per_session_threads = False
            return "shared"
        so.intra_op_num_threads = self.options.intra_op_threads
        so.inter_op_num_threads = self.options.inter_op_threads
        spin = "1" if self.options.allow_spinning else "0"
        so.add_session_config_entry("session.intra_op.allow_spinning", spin)
        so.add_session_config_entry("session.inter_op.allow_spinning", spin)
        return "own"

    @property
    def shared_tables(self) -> dict[str, int]:
        """Bytes of each initializer this session reads from the process-wide shared copy, by name."""
        return {name: table.nbytes for name, table in self._shared.items()}

    def _shared_tables(self, path: Path, providers: list[str]) -> dict[str, SharedTable]:
        """Embedding tables to take from the process-wide copy (CPU sessions only: a GPU holds its own)."""
        if not self.options.share_weights or providers != ["CPUExecutionProvider"]:
            return {}
        try:
            return SHARED.tables_for(path)
        except (ScanError, OSError) as e:  # ONNX Runtime reads the file next and says what is wrong with it
            log.warning("%s v%s: not sharing weights: %s", self.manifest.name, self.manifest.version, e)
            return {}

    def validate(self, inputs: dict[str, np.ndarray]) -> None:
        """Datatypes and shapes were checked against the manifest by the dataplane; nothing else to check."""

    def _prepare(self, session) -> None:
        """Hook for subclasses that need the session's real inputs (text models map tokens onto them)."""

    def _feeds(self, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Session feeds from request inputs, plus side outputs; ONNX strings must be str, not bytes."""
        return {n: _ort_strings(n, a) if a.dtype == object else a for n, a in inputs.items()}, {}

    def _warm_up(self) -> None:
        for rows in self.options.warmup_batch_sizes:
            if rows > 1 and (not self.inputs or self.inputs[0].shape[:1] != [-1]):
                continue
            feeds = warmup_inputs(self.inputs, rows)
            for _ in range(self.options.warmup_runs):
                self.predict(feeds, [o.name for o in self.outputs])

    def predict(self, inputs: dict[str, np.ndarray], output_names: list[str]) -> dict[str, np.ndarray]:
        session = self._session
        if session is None:
            raise InternalError(f"model {self.manifest.name} v{self.manifest.version} is not loaded")
        feeds, side = self._feeds(inputs)
        run_names = [n for n in output_names if n not in side]
        out = dict(zip(run_names, self._execute(session, feeds, run_names), strict=True))
        return {n: side[n] if n in side else out[n] for n in output_names}

    def _execute(self, session, feeds: dict[str, np.ndarray], run_names: list[str]) -> list[np.ndarray]:
        """One session run (subclasses may split it into several), with ORT's errors as ours."""
        try:
            run = self._run_bound if self._io_binding else _run_plain
            return run(session, feeds, run_names)
        except Exception as e:
            # ORT's InvalidArgument means the inputs (e.g. inconsistent dims) were wrong: the caller's fault.
            if type(e).__name__ == "InvalidArgument":
                raise BadRequestError(f"model '{self.manifest.name}' rejected the inputs: {e}") from e
            raise InternalError(f"model '{self.manifest.name}' failed to run: {type(e).__name__}: {e}") from e

    def _run_bound(self, session, inputs: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        """GPU path: bind host inputs once and let ORT allocate outputs on the device, copied back at the end."""
        binding = session.io_binding()
        for name, value in inputs.items():
            binding.bind_cpu_input(name, value)
        for name in output_names:
            binding.bind_output(name, self.bind_device, self.options.providers.cuda_device_id)
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def unload(self) -> None:
        self._session = None
        self._thread_pool = ""
        self._shared = {}
        self._providers = []


USE_ENV_ALLOCATORS = "session.use_env_allocators"
_shared_allocator = threading.Lock()
_shared_allocator_registered: list[bool] = []


def register_shared_cpu_allocator() -> None:
    """Register one CPU arena allocator in ONNX Runtime's environment (once per process).

    Sessions created with ``session.use_env_allocators=1`` then take their CPU buffers from it instead of an
    arena each: the memory a warm-up (or a burst at batch 64) leaves in an arena is kept once, not once per
    model. ORT's environment is process-wide, hence the process-wide flag.
    """
    import onnxruntime as ort

    with _shared_allocator:
        if _shared_allocator_registered:
            return
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))  # ORT's default arena settings
        _shared_allocator_registered.append(True)


def _config_entry(so, key: str) -> str:
    try:
        return so.get_session_config_entry(key)
    except Exception:  # ORT raises when the key was never set
        return ""


def _run_plain(session, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    return session.run(names, feeds)


def _ort_strings(name: str, arr: np.ndarray) -> np.ndarray:
    """ONNX string tensors hold text: ORT would str() a bytes object (b'..'), so decode UTF-8 here."""
    try:
        return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(arr)
    except UnicodeDecodeError as e:
        raise BadRequestError(f"input '{name}': BYTES elements must be UTF-8 text for this model: {e}") from e


def _check_signature(manifest: ModelManifest, session, check_inputs: bool = True) -> None:
    """The manifest is what clients see: refuse a model whose real inputs/outputs differ from it.

    Text models are the exception for inputs: clients send texts, the graph takes the tokenizer's tensors.
    """
    pairs = [("output", manifest.outputs, session.get_outputs())]
    if check_inputs:
        pairs.insert(0, ("input", manifest.inputs, session.get_inputs()))
    for kind, specs, args in pairs:
        real = {a.name: a for a in args}
        for spec in specs:
            arg = real.get(spec.name)
            if arg is None:
                raise ModelLoadError(
                    f"{manifest.name} v{manifest.version}: manifest lists {kind} '{spec.name}', "
                    f"the model has {list(real)}"
                )
            datatype = ORT_TO_V2.get(arg.type)
            if datatype != spec.datatype:
                raise ModelLoadError(
                    f"{manifest.name} v{manifest.version}: {kind} '{spec.name}' is {datatype or arg.type} "
                    f"in the model, "
                    f"{spec.datatype} in the manifest"
                )
    required = {a.name for a in session.get_inputs()}
    missing = required - {s.name for s in manifest.inputs}
    if missing and check_inputs:
        raise ModelLoadError(
            f"{manifest.name} v{manifest.version}: model inputs {sorted(missing)} are not in the manifest"
        )

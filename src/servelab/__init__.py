"""servelab — the LLM serving decision lab.

Parts (one package each): ``catalog`` (GPUs, models, workloads), ``perf`` (memory
budget and roofline step times), ``sim`` (discrete-event serving fleet), ``load``
(client for OpenAI-compatible endpoints), ``emulator`` (a simulated OpenAI server),
``kernels`` (GPU kernel lab, optional ``gpu`` extra), ``plan`` (fleet sizing),
``evidence`` (claims, verdicts, ledger), ``report`` (tables and HTML), ``cli``.
Every run produces :class:`servelab.records.RequestRecord` lists; one module,
:mod:`servelab.metrics`, computes every metric from them.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"

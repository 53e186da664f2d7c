"""The data model every stage shares: the batch a pipeline carries (TraceBatch), what an LLM span is (LlmSpan,
recognised by conventions and extract), feedback, samples, evaluations and the events that carry them into traces,
and the OTLP codec. Imports nothing of processor/ but component/."""

"""Scripts that drive ``mlgate serve`` with other projects' client packages, each in its own
process: KServe's SDK and tritonclient both register ``inference.*`` protobuf messages in the
default descriptor pool, so they cannot be imported into one interpreter (nor into pytest's)."""

"""The embedded default dataset: CT-RATE-format phantom chest CTs that ctsearch generates."""

from ctsearch.data.phantom.spec import Acquisition, Case, Finding, Patient


def synth(*args, **kwargs):
    """Generate a phantom CT-RATE tree; see `ctsearch.data.phantom.generate.synth`."""
    from ctsearch.data.phantom.generate import synth as _synth

    return _synth(*args, **kwargs)


__all__ = ["Acquisition", "Case", "Finding", "Patient", "synth"]

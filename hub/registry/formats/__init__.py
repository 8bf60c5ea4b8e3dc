"""Models that arrive in formats other than ONNX, converted to ONNX at import.

What the hub accepts, and why (decided for issue 15):

* **ONNX** as it is (:mod:`hub.registry.bundler`).
* **scikit-learn saved with skops** (``skops.io.dump``): skops reads the file without
  running code from it, and the hub trusts only scikit-learn, NumPy and SciPy types in it;
  skl2onnx converts the estimator, classifiers' probabilities as a tensor.
* **PyTorch**: a TorchScript module (``torch.jit.save``), traced on the sample inputs the
  uploader gives (TorchScript records no input shapes), or a ``torch.export`` program
  (``torch.export.save``), whose recorded inputs and dynamic axes carry over.
* **An MLflow model directory, zipped**: its ``onnx`` flavour, or a ``sklearn`` flavour
  saved with skops; its signature names the inputs and, where no sample is given, gives
  the probe inputs conversions need.

Pickles (joblib, ``pickle``, ``torch.save``, MLflow's default sklearn and pytorch
flavours) are refused on the hub: unpickling runs whatever code the file holds, with the
hub's signing key in reach of whoever may upload. ``appliance model import`` converts
them to ONNX on the uploader's own machine instead (:mod:`hub.registry.formats.local`),
where the file is its owner's to trust. Conversions on the hub run in a child process
(:mod:`hub.registry.formats.isolated`) with a bare environment and a time limit, so a
converter that crashes or hangs on a hostile file costs one refused upload, not the hub.
"""

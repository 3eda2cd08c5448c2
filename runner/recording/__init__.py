"""Every run recorded in MLflow, by a recording process of the job's own, in one direction:

    the job:     RecordingProcess.submit(request) -> Future          (recording/client.py)
    the child:   request.apply(store) -> its answer          (recording/process.py)
    the store:   the MLflow calls, and nothing else          (recording/store.py)

Requests are typed (recording/requests.py); answers come back in order as futures. Importing
this package imports neither MLflow nor TensorFlow."""

"""LearningChain sandbox: hardened Docker execution of untrusted training jobs.

What the node and worker call (the job contract is protocol_spec/job_contract.md):

- ``engine.connect()``: a Docker client, or ``EngineUnavailable`` saying how to start one.
- ``base_image.ensure_base_image(client)``: the offline base image; idempotent.
- ``runner.SandboxRunner(client, node_id)``: ``.train(...)`` -> ``RunResult``,
  ``.evaluate(...)`` -> ``EvalResult``, ``.run_entry(...)`` for any entry point.
  Job failures come back as results with a ``results.FailureReason``.
- ``limits.ResourceLimits`` / ``limits.TrainParams``: what a run may use and is given.
- ``image_blob.export_image`` / ``load_image`` / ``blob_image_id``: images as blobs,
  addressed by image id; a mismatch raises ``errors.ImageDigestMismatch``.
- ``cleanup.cleanup_containers(client, node_id)``: at node start, remove leftovers.
- ``job_file.load_job_file`` / ``job_template.init_job`` / ``build_job``: job folders.
"""

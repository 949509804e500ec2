"""What a study becomes for people and trainers: the HTML report (``report``, written by
``report_file``), the live progress lines (``progress``) and the export of a trial as a
model and training config (``export``).

May import: ``fidelity``, ``ranking``, ``study``, ``training``, ``data``, ``errors``,
``attributes``. Never Ray.
"""

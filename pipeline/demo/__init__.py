"""Synthetic demo cohort: phantom chest CTs written as messy DICOM and NIfTI.

Entry point: :func:`pipeline.demo.cohort.make_cohort`, called by the ``demo`` stage.
"""

"""Calibration: FP16 and INT8 variants of the exported models (see issue "FP16 and calibrated INT8 variants")."""

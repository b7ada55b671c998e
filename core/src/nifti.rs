//! NIfTI-1 files (`.nii`, `.nii.gz`).

"""Medical imaging transfer-learning pipeline: DICOM/NIfTI to a fine-tuned ResNet and an ROC/AUC report."""

"""The notebook topics: each has helpers/<topic>.py (student code), checks/<topic>.py (its checks and
``build_references``) and checks/references/<topic>.pt."""
TOPICS = {
    "saliency": "notebooks/1_network_visualization.ipynb",
    "gradcam": "notebooks/2_gradcam.ipynb",
    "fooling": "notebooks/3_fooling_and_class_images.ipynb",
    "style_transfer": "notebooks/4_style_transfer.ipynb",
}

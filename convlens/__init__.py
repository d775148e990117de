"""The convlens kit library: everything the notebooks and checks use besides the students' exercises.

    model        the pretrained classifier (EfficientNet-Lite0), layers, fast copies, feature extraction
    images       loading the shipped photos and style images; tensors back to pictures
    plotting     figure grids and overlays
    attribution  fast Captum-equivalent occlusion and integrated gradients, deletion / insertion curves,
                 the model-randomization test
    embedding    what the last layer represents (crops, pooled features)
    visualize    the class-visualization loop, DeepDream, single-channel images
    priors       feature visualization with better priors (Fourier, decorrelated colour, transformations)
    colour       colour statistics: saturation, contrast, histogram distance, colour and histogram matching
    style        style-transfer features, settings, targets and the feed-forward style network
    notebook     the one-line set-up of every notebook (path, device, threads, plots)

Students do not edit these files: their code lives in helpers/.
"""

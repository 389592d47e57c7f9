"""servelab.kernels"""

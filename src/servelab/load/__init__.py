"""servelab.load"""

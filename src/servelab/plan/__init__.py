"""servelab.plan"""

"""servelab.evidence"""

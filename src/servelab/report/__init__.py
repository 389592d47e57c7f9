"""servelab.report"""

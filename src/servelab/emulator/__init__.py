"""servelab.emulator"""

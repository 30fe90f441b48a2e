"""edgeclip.compress"""

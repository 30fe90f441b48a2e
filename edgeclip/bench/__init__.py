"""edgeclip.bench"""

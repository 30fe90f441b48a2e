"""edgeclip.distill"""

"""edgeclip.data"""

"""edgeclip.teacher"""

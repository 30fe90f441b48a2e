"""edgeclip.video"""

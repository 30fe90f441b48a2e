"""edgeclip.students"""

"""edgeclip.runtimes"""

"""edgeclip.exporters"""

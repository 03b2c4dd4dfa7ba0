//! iomux framing, cursor file and job files (to be written).

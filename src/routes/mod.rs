//! Green's route table (being written).

//! What only AD has, checked as a Windows admin would.

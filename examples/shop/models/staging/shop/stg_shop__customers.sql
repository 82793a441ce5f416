-- One row per customer, named for the marts.
select
    id as customer_id,
    email,
    full_name,
    phone,
    marketing_opt_in,
    created_at
from {{ source('shop', 'customers') }}

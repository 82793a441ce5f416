-- The mailing list: customers who opted in.
select
    id as customer_id,
    email
from {{ source('shop', 'customers') }}
where marketing_opt_in
